// qphy channel concat of N_IN streams (FINN StreamingConcat): per pixel, FOLDS[0] beats of
// input 0, then FOLDS[1] beats of input 1, ... Each lane is sign- or zero-extended from
// IN_BITS[i] to OUT_BITS. Combinational: latency 0, one beat per cycle.
`default_nettype none
module qphy_concat #(
	parameter int unsigned N_IN = 2,
	parameter int unsigned SIMD = 1,
	parameter int unsigned OUT_BITS = 8,
	// Per input, packed 32-bit fields (input 0 lowest): lane bits, signedness, beats per pixel.
	parameter logic [32*N_IN-1:0] IN_BITS = {N_IN{32'd8}},
	parameter logic [32*N_IN-1:0] IN_SIGNED = {N_IN{32'd1}},
	parameter logic [32*N_IN-1:0] FOLDS = {N_IN{32'd1}},
	parameter int unsigned MAX_IN_BITS = 8
)(
	input  wire                          ap_clk,
	input  wire                          ap_rst_n,
	input  wire [N_IN*SIMD*MAX_IN_BITS-1:0] s_axis_tdata,  // input i at [i*SIMD*MAX_IN_BITS]
	input  wire [N_IN-1:0]               s_axis_tvalid,
	output logic [N_IN-1:0]              s_axis_tready,
	output logic [SIMD*OUT_BITS-1:0]     m_axis_tdata,
	output wire                          m_axis_tvalid,
	input  wire                          m_axis_tready
);
	localparam int unsigned MAX_FOLD = 1 << 20;
	localparam int unsigned SEL_BITS = N_IN > 1 ? $clog2(N_IN) : 1;
	logic [SEL_BITS-1:0] sel;
	logic [$clog2(MAX_FOLD)-1:0] cnt;
	assign m_axis_tvalid = s_axis_tvalid[sel];
	always_comb begin
		s_axis_tready = '0;
		s_axis_tready[sel] = m_axis_tready;
		m_axis_tdata = '0;
		for (int unsigned i = 0; i < N_IN; i++) begin
			if (sel == SEL_BITS'(i)) begin
				for (int unsigned j = 0; j < SIMD; j++) begin
					automatic logic [MAX_IN_BITS-1:0] v =
						s_axis_tdata[(i*SIMD + j)*MAX_IN_BITS +: MAX_IN_BITS];
					automatic logic [OUT_BITS-1:0] x = '0;
					for (int unsigned b = 0; b < OUT_BITS; b++)
						x[b] = (b < IN_BITS[32*i +: 32]) ? v[b] :
							(IN_SIGNED[32*i] && v[IN_BITS[32*i +: 32]-1]);
					m_axis_tdata[j*OUT_BITS +: OUT_BITS] = x;
				end
			end
		end
	end
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			sel <= '0;
			cnt <= '0;
		end else if (m_axis_tvalid && m_axis_tready) begin
			if (cnt == $bits(cnt)'(FOLDS[32*sel +: 32] - 1)) begin
				cnt <= '0;
				sel <= (sel == $bits(sel)'(N_IN - 1)) ? '0 : sel + 1;
			end else cnt <= cnt + 1;
		end
	end
endmodule
`default_nettype wire

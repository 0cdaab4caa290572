// qphy channel split (FINN StreamingSplit): per pixel, FOLDS[0] beats go to output 0, then
// FOLDS[1] beats to output 1, ... Combinational: latency 0, one beat per cycle.
`default_nettype none
module qphy_split #(
	parameter int unsigned N_OUT = 2,
	parameter int unsigned WIDTH = 8,
	// Beats per pixel of each output, packed 32-bit fields (output 0 lowest).
	parameter logic [32*N_OUT-1:0] FOLDS = {N_OUT{32'd1}}
)(
	input  wire                    ap_clk,
	input  wire                    ap_rst_n,
	input  wire [WIDTH-1:0]        s_axis_tdata,
	input  wire                    s_axis_tvalid,
	output wire                    s_axis_tready,
	output wire [N_OUT*WIDTH-1:0]  m_axis_tdata,
	output logic [N_OUT-1:0]       m_axis_tvalid,
	input  wire [N_OUT-1:0]        m_axis_tready
);
	localparam int unsigned MAX_FOLD = 1 << 20;
	localparam int unsigned SEL_BITS = N_OUT > 1 ? $clog2(N_OUT) : 1;
	logic [SEL_BITS-1:0] sel;
	logic [$clog2(MAX_FOLD)-1:0] cnt;
	assign m_axis_tdata = {N_OUT{s_axis_tdata}};
	assign s_axis_tready = m_axis_tready[sel];
	always_comb begin
		m_axis_tvalid = '0;
		m_axis_tvalid[sel] = s_axis_tvalid;
	end
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			sel <= '0;
			cnt <= '0;
		end else if (s_axis_tvalid && s_axis_tready) begin
			if (cnt == $bits(cnt)'(FOLDS[32*sel +: 32] - 1)) begin
				cnt <= '0;
				sel <= (sel == $bits(sel)'(N_OUT - 1)) ? '0 : sel + 1;
			end else cnt <= cnt + 1;
		end
	end
endmodule
`default_nettype wire

// qphy global sum pool (FINN GlobalAccPool; the average's 1/PIXELS is a scale the thresholds
// or the host apply): input (PIXELS, CF, PE) beats, output (CF, PE) sums. During the last pixel
// each channel fold's final sum leaves as one beat, so the cycles per frame are the input
// beats. OUT_BITS wide lanes, accumulators in a CF-deep register array.
`default_nettype none
module qphy_accpool #(
	parameter int unsigned PE = 1,
	parameter int unsigned IN_BITS = 8,
	parameter int unsigned OUT_BITS = 16,
	parameter bit SIGNED = 1,
	parameter int unsigned CF = 1,
	parameter int unsigned PIXELS = 4
)(
	input  wire                    ap_clk,
	input  wire                    ap_rst_n,
	input  wire [PE*IN_BITS-1:0]   s_axis_tdata,
	input  wire                    s_axis_tvalid,
	output wire                    s_axis_tready,
	output logic [PE*OUT_BITS-1:0] m_axis_tdata,
	output logic                   m_axis_tvalid,
	input  wire                    m_axis_tready
);
	logic [$clog2(CF+1)-1:0] cf;
	logic [$clog2(PIXELS+1)-1:0] px;
	logic [PE*OUT_BITS-1:0] acc[CF];
	logic [PE*OUT_BITS-1:0] nxt;
	assign s_axis_tready = !m_axis_tvalid || m_axis_tready;
	always_comb begin
		for (int unsigned i = 0; i < PE; i++) begin
			automatic logic [OUT_BITS-1:0] x = SIGNED ?
				OUT_BITS'($signed(s_axis_tdata[i*IN_BITS +: IN_BITS])) :
				OUT_BITS'(s_axis_tdata[i*IN_BITS +: IN_BITS]);
			nxt[i*OUT_BITS +: OUT_BITS] = (px == 0) ? x : acc[cf][i*OUT_BITS +: OUT_BITS] + x;
		end
	end
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			cf <= '0;
			px <= '0;
			m_axis_tvalid <= 0;
		end else begin
			if (m_axis_tready) m_axis_tvalid <= 0;
			if (s_axis_tvalid && s_axis_tready) begin
				acc[cf] <= nxt;
				if (px == $bits(px)'(PIXELS - 1)) begin
					m_axis_tvalid <= 1;
					m_axis_tdata <= nxt;
				end
				if (cf == $bits(cf)'(CF - 1)) begin
					cf <= '0;
					px <= (px == $bits(px)'(PIXELS - 1)) ? '0 : px + 1;
				end else cf <= cf + 1;
			end
		end
	end
endmodule
`default_nettype wire

// qphy elementwise add of two integer streams (FINN ElementwiseAdd / AddStreams): PE lanes per
// beat, each input lane sign- or zero-extended to OUT_BITS. One output register with
// backpressure: latency 1, one beat per cycle.
`default_nettype none
module qphy_add #(
	parameter int unsigned PE = 1,
	parameter int unsigned A_BITS = 8,
	parameter int unsigned B_BITS = 8,
	parameter int unsigned OUT_BITS = 9,
	parameter bit A_SIGNED = 1,
	parameter bit B_SIGNED = 1
)(
	input  wire                    ap_clk,
	input  wire                    ap_rst_n,
	input  wire [PE*A_BITS-1:0]    s_axis_a_tdata,
	input  wire                    s_axis_a_tvalid,
	output wire                    s_axis_a_tready,
	input  wire [PE*B_BITS-1:0]    s_axis_b_tdata,
	input  wire                    s_axis_b_tvalid,
	output wire                    s_axis_b_tready,
	output logic [PE*OUT_BITS-1:0] m_axis_tdata,
	output logic                   m_axis_tvalid,
	input  wire                    m_axis_tready
);
	wire load = s_axis_a_tvalid && s_axis_b_tvalid && (!m_axis_tvalid || m_axis_tready);
	assign s_axis_a_tready = load;
	assign s_axis_b_tready = load;
	logic [PE*OUT_BITS-1:0] sum;
	always_comb begin
		for (int unsigned i = 0; i < PE; i++) begin
			automatic logic [OUT_BITS-1:0] a = A_SIGNED ?
				OUT_BITS'($signed(s_axis_a_tdata[i*A_BITS +: A_BITS])) :
				OUT_BITS'(s_axis_a_tdata[i*A_BITS +: A_BITS]);
			automatic logic [OUT_BITS-1:0] b = B_SIGNED ?
				OUT_BITS'($signed(s_axis_b_tdata[i*B_BITS +: B_BITS])) :
				OUT_BITS'(s_axis_b_tdata[i*B_BITS +: B_BITS]);
			sum[i*OUT_BITS +: OUT_BITS] = a + b;
		end
	end
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) m_axis_tvalid <= 0;
		else if (load) m_axis_tvalid <= 1;
		else if (m_axis_tready) m_axis_tvalid <= 0;
		if (load) m_axis_tdata <= sum;
	end
endmodule
`default_nettype wire

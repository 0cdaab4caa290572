// qphy stream fork: every input beat goes to all N_OUT outputs (FINN DuplicateStreams).
// An output that has taken the beat waits (done flag) until the others have too; the input
// beat is consumed when all outputs have it. Latency 0, one beat per cycle.
`default_nettype none
module qphy_fork #(
	parameter int unsigned N_OUT = 2,
	parameter int unsigned WIDTH = 8
)(
	input  wire                    ap_clk,
	input  wire                    ap_rst_n,
	input  wire [WIDTH-1:0]        s_axis_tdata,
	input  wire                    s_axis_tvalid,
	output wire                    s_axis_tready,
	output wire [N_OUT*WIDTH-1:0]  m_axis_tdata,
	output wire [N_OUT-1:0]        m_axis_tvalid,
	input  wire [N_OUT-1:0]        m_axis_tready
);
	logic [N_OUT-1:0] done;  // output k has taken the current beat already
	wire  [N_OUT-1:0] taken = done | (m_axis_tvalid & m_axis_tready);
	assign s_axis_tready = &taken;
	assign m_axis_tvalid = {N_OUT{s_axis_tvalid}} & ~done;
	assign m_axis_tdata = {N_OUT{s_axis_tdata}};
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n || (s_axis_tvalid && s_axis_tready)) done <= '0;
		else done <= taken;
	end
endmodule
`default_nettype wire

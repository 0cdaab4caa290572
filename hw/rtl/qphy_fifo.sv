// qphy branch FIFO: DEPTH beats of WIDTH bits, first-word fall-through, full throughput.
// The graph stitcher sizes DEPTH per branch from the paths' latency difference.
`default_nettype none
module qphy_fifo #(
	parameter int unsigned DEPTH = 2,
	parameter int unsigned WIDTH = 8
)(
	input  wire              ap_clk,
	input  wire              ap_rst_n,
	input  wire [WIDTH-1:0]  s_axis_tdata,
	input  wire              s_axis_tvalid,
	output wire              s_axis_tready,
	output wire [WIDTH-1:0]  m_axis_tdata,
	output wire              m_axis_tvalid,
	input  wire              m_axis_tready
);
	localparam int unsigned AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
	logic [WIDTH-1:0] mem[DEPTH];
	logic [AW-1:0] rd, wr;
	logic [AW:0] count;
	wire push = s_axis_tvalid && s_axis_tready;
	wire pop = m_axis_tvalid && m_axis_tready;
	assign s_axis_tready = count != (AW+1)'(DEPTH);
	assign m_axis_tvalid = count != 0;
	assign m_axis_tdata = mem[rd];
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			rd <= '0;
			wr <= '0;
			count <= '0;
		end else begin
			if (push) begin
				mem[wr] <= s_axis_tdata;
				wr <= (wr == AW'(DEPTH - 1)) ? '0 : wr + 1;
			end
			if (pop) rd <= (rd == AW'(DEPTH - 1)) ? '0 : rd + 1;
			count <= count + (AW+1)'(push) - (AW+1)'(pop);
		end
	end
endmodule
`default_nettype wire

// Test design for the compiled harness (tests/sim/test_harness.py): a one-entry AXI-stream
// register slice with the stitched top's ports, which can lose or repeat one beat.
//
// One beat every two cycles: s_axis_tready = !full. Beats are counted from reset; beat DROP_AT is
// swallowed, beat DUP_AT is sent twice (-1: never). Three tops fix the parameters, since the
// harness builds a top without parameter overrides.
`default_nettype none

module qphy_faulty_passthrough #(
	parameter int WIDTH = 72,
	parameter int DROP_AT = -1,
	parameter int DUP_AT = -1
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
	logic [WIDTH-1:0]  data;
	logic              full;
	logic              again;
	int                count;

	assign s_axis_tready = !full;
	assign m_axis_tvalid = full;
	assign m_axis_tdata = data;

	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			data <= '0;
			full <= 1'b0;
			again <= 1'b0;
			count <= 0;
		end
		else begin
			if (full && m_axis_tready) begin
				if (again)  again <= 1'b0;  // stay full: the same beat once more
				else        full <= 1'b0;
			end
			if (s_axis_tvalid && !full) begin
				count <= count + 1;
				if (count != DROP_AT) begin
					data <= s_axis_tdata;
					full <= 1'b1;
					again <= (count == DUP_AT);
				end
			end
		end
	end
endmodule

module passthrough_ok (
	input  wire         ap_clk, ap_rst_n,
	input  wire [71:0]  s_axis_tdata,
	input  wire         s_axis_tvalid,
	output wire         s_axis_tready,
	output wire [71:0]  m_axis_tdata,
	output wire         m_axis_tvalid,
	input  wire         m_axis_tready
);
	qphy_faulty_passthrough #(.WIDTH(72)) core (.*);
endmodule

module passthrough_drop (
	input  wire         ap_clk, ap_rst_n,
	input  wire [71:0]  s_axis_tdata,
	input  wire         s_axis_tvalid,
	output wire         s_axis_tready,
	output wire [71:0]  m_axis_tdata,
	output wire         m_axis_tvalid,
	input  wire         m_axis_tready
);
	qphy_faulty_passthrough #(.WIDTH(72), .DROP_AT(500)) core (.*);
endmodule

module passthrough_dup (
	input  wire         ap_clk, ap_rst_n,
	input  wire [71:0]  s_axis_tdata,
	input  wire         s_axis_tvalid,
	output wire         s_axis_tready,
	output wire [71:0]  m_axis_tdata,
	output wire         m_axis_tvalid,
	input  wire         m_axis_tready
);
	qphy_faulty_passthrough #(.WIDTH(72), .DUP_AT(500)) core (.*);
endmodule

`default_nettype wire

// qphy window max pool (FINN Pool, Function=MaxPool) behind a depthwise sliding-window
// generator: per output pixel the input is (CF, K, PE) beats (CF = channels / PE, K = kernel
// elements); after the K beats of one channel fold, the lane-wise maximum leaves as one beat.
// 1-D and 2-D pooling differ only in the window generator. One output register: latency K
// beats, one input beat per cycle.
`default_nettype none
module qphy_pool #(
	parameter int unsigned PE = 1,
	parameter int unsigned BITS = 8,
	parameter bit SIGNED = 1,
	parameter int unsigned K = 4
)(
	input  wire                   ap_clk,
	input  wire                   ap_rst_n,
	input  wire [PE*BITS-1:0]     s_axis_tdata,
	input  wire                   s_axis_tvalid,
	output wire                   s_axis_tready,
	output logic [PE*BITS-1:0]    m_axis_tdata,
	output logic                  m_axis_tvalid,
	input  wire                   m_axis_tready
);
	logic [$clog2(K+1)-1:0] k;
	logic [PE*BITS-1:0] acc;
	logic [PE*BITS-1:0] nxt;
	assign s_axis_tready = !m_axis_tvalid || m_axis_tready;
	always_comb begin
		for (int unsigned i = 0; i < PE; i++) begin
			automatic logic [BITS-1:0] x = s_axis_tdata[i*BITS +: BITS];
			automatic logic [BITS-1:0] a = acc[i*BITS +: BITS];
			automatic logic gt = SIGNED ? ($signed(x) > $signed(a)) : (x > a);
			nxt[i*BITS +: BITS] = (k == 0 || gt) ? x : a;
		end
	end
	always_ff @(posedge ap_clk) begin
		if (!ap_rst_n) begin
			k <= '0;
			m_axis_tvalid <= 0;
		end else begin
			if (m_axis_tready) m_axis_tvalid <= 0;
			if (s_axis_tvalid && s_axis_tready) begin
				acc <= nxt;
				if (k == $bits(k)'(K - 1)) begin
					k <= '0;
					m_axis_tvalid <= 1;
					m_axis_tdata <= nxt;
				end else k <= k + 1;
			end
		end
	end
endmodule
`default_nettype wire

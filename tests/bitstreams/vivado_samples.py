"""Hand-written Vivado report samples in the layout Vivado 2024.x prints (not real runs), shared
by the report-parser tests and the stand-in vivado of the run-plumbing tests."""

# Hand-written sample, not a real run: rows/columns as in report_utilization of UltraScale+.
UTIL_SAMPLE = """\
1. CLB Logic
------------

+----------------------------+-------+-------+------------+-----------+-------+
|          Site Type         |  Used | Fixed | Prohibited | Available | Util% |
+----------------------------+-------+-------+------------+-----------+-------+
| CLB LUTs*                  | 12345 |     0 |          0 |    230400 |  5.36 |
|   LUT as Logic             | 11000 |     0 |          0 |    230400 |  4.77 |
| CLB Registers              | 23456 |     0 |          0 |    460800 |  5.09 |
+----------------------------+-------+-------+------------+-----------+-------+

3. BLOCKRAM
-----------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    | 76.5 |     0 |          0 |       312 | 24.52 |
|   RAMB36/FIFO*    |   70 |     0 |          0 |       312 | 22.44 |
|   RAMB18          |   13 |     0 |          0 |       624 |  2.08 |
| URAM              |    0 |     0 |          0 |        96 |  0.00 |
+-------------------+------+-------+------------+-----------+-------+

4. ARITHMETIC
-------------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |  164 |     0 |          0 |      1728 |  9.49 |
|   DSP48E2 only |  164 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+
"""

# Hand-written sample of report_timing_summary's Design Timing Summary.
TIMING_SAMPLE = """\
------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------
     -0.250       -3.100                     17                45678        0.021        0.000                      0                45678        1.958        0.000                       0                 20001


Timing constraints are not met.
"""  # noqa: E501

# Hand-written sample of report_power's summary table.
POWER_SAMPLE = """\
1. Summary
----------

+--------------------------+--------------+
| Total On-Chip Power (W)  | 3.912        |
| Design Power Budget (W)  | Unspecified* |
| Power Budget Margin (W)  | NA           |
| Dynamic (W)              | 3.231        |
| Device Static (W)        | 0.681        |
| Effective TJA (C/W)      | 1.0          |
| Max Ambient (C)          | 96.1         |
| Junction Temperature (C) | 28.9         |
| Confidence Level         | Low          |
| Setting File             | ---          |
| Simulation Activity File | ---          |
| Design Nets Matched      | NA           |
+--------------------------+--------------+
"""

from tests.sim.conftest import verilator  # noqa: F401 - the shared skip-or-fail fixture

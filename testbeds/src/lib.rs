//! Standard and P2P testbeds (embedded or Docker) and the compare experiment.

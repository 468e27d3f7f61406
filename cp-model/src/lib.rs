//! Sans-IO performance model of one OpenStack control plane.

//! One OpenStack deployment (1 controller + K computes) that real clients accept, with a calibrated control-plane model.

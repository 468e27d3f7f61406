//! Concurrent-boot experiments against any OpenStack, with honest latency.

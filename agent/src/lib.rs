//! The reference P2P agent: many cloudlets presented as one OpenStack.

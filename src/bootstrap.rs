//! Bootstrap: the locked sub-CA key, the TLSPC client and the sub-CA lifecycle; the only module that talks to TLSPC.

pub mod locked_key;

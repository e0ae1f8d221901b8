//! `regex` for oci-spec, answered by regex-lite (see Cargo.toml).
pub use regex_lite::*;

//! Wire formats: the Portal <-> Server link and the client protocols. Only
//! this module knows MessagePack or telnet bytes.

pub mod link;
pub mod telnet;

//! Wire formats: the Portal <-> Server link, the client protocols and the colour
//! markup they render. Only this module knows MessagePack, telnet bytes or markup.

pub mod link;
pub mod proxy;
pub mod telnet;
pub mod text;
pub mod tls;
pub mod websocket;

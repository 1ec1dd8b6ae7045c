//! The network edge: accepting connections and serving HTTP/1.1 on them, with each request
//! tagged by the address it came from, and what one connection may cost bounded.

mod accept;
mod descriptors;
mod stream;

pub use accept::{serve, HttpLimits};
pub use stream::HttpStream;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The TCP stream of an upgraded connection served by [`serve`], and the bytes hyper had already
/// read past the request; `None` if it came from elsewhere.
pub fn upgraded_tcp(upgraded: Upgraded) -> Option<(TcpStream, bytes::Bytes)> {
    let parts = upgraded.downcast::<TokioIo<HttpStream>>().ok()?;
    Some((parts.io.into_inner().into_tcp(), parts.read_buf))
}

//! The network edge: accepting connections and serving HTTP/1.1 on them, with each request
//! tagged by the address it came from.

mod accept;

pub use accept::serve;

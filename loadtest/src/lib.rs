pub mod accounting;
pub mod frame;
pub mod payload;
pub mod schedule;
pub mod stats;

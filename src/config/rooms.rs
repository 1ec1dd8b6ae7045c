//! How rooms are kept: registry shards and each room's broadcast buffer.

use clap::Args;

use super::{at_least, ConfigError};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rooms")]
pub struct RoomsConfig {
    /// Shards of the room registry; 0 picks the next power of two ≥ 4 × CPU cores.
    #[arg(long, env = "ROOM_SHARDS", default_value_t = 0)]
    pub room_shards: usize,

    /// Frames buffered per room for subscribers that fall behind; a subscriber further behind gets
    /// a `gap` frame instead of the frames it missed (rounded up to a power of two).
    #[arg(long, env = "ROOM_CHANNEL_CAPACITY", default_value_t = 1024)]
    pub room_channel_capacity: usize,
}

impl RoomsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("ROOM_CHANNEL_CAPACITY", self.room_channel_capacity, 1)?;
        if self.room_shards != 0 && !self.room_shards.is_power_of_two() {
            return Err(ConfigError {
                setting: "ROOM_SHARDS",
                reason: format!("must be 0 or a power of two, got {}", self.room_shards),
            });
        }
        Ok(())
    }

    /// Registry shard count, resolving 0 to the next power of two ≥ 4 × cores.
    pub fn resolved_shards(&self) -> usize {
        if self.room_shards != 0 {
            return self.room_shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (4 * cores).next_power_of_two()
    }
}

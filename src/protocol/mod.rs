//! Lavalink v4 wire types and the lavaplayer track codec. Pure data: no I/O here.

pub mod filters;
pub mod info;
pub mod load;
pub mod messages;
pub mod modified_utf8;
pub mod omissible;
pub mod player;
pub mod stats;
pub mod track;
pub mod track_codec;

pub use omissible::Omissible;

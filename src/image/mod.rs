//! Images: templates say where a distribution comes from, the index and mirror
//! modules read image servers and apt sources, and the cache keeps each image once.

pub mod index;
pub mod mirror;
pub mod template;

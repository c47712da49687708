//! The shortener's domain: codes, target URLs, links and the rules on them. Nothing here knows
//! about HTTP, SQL or caches.

pub mod bot;
pub mod code;
pub mod link;
pub mod permutation;
pub mod target;

pub use self::{
    code::{AliasError, CODE_SPACE, ShortCode},
    link::{Availability, Link, NewLink, OwnerId},
    permutation::Permutation,
    target::{ServedAt, TargetUrl, TargetUrlError},
};

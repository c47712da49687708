//! The feed's domain: ids, handles, post text, posts and profiles, and the position a page of a
//! feed starts from. No HTTP or SQL in here.

mod id;
mod page;
mod post;
mod user;

pub use self::{
    id::{MAX_ID, PostId, UserId},
    page::{Cursor, Limit},
    post::{Post, PostText},
    user::{Account, Handle, Profile},
};

/// Why input is refused: the JSON member (without `#/`) and the reason, for a 422 that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

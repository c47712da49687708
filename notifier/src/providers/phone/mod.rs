//! SMS and push, through an HTTP provider (an SMS gateway such as Twilio, a push service such as
//! FCM or APNs): [`client`] is how the notifier calls one, and [`simulator`] is the provider the
//! lab and the tests run in its place, with fault switches.

pub mod client;
pub mod simulator;

//! The supervisor's decisions, as synchronous state machines: the MediaMTX
//! process ([`process`]) and the cameras ([`cameras`]). The async driver in
//! [`crate::daemon`] feeds them events and executes their actions.

pub mod cameras;
pub mod process;

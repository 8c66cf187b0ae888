//! The supervisor's decisions, as synchronous state machines and pure
//! functions, tested with a fake clock: the MediaMTX process ([`process`]),
//! the cameras ([`cameras`]), the disk thresholds ([`disk`]), path
//! convergence ([`converge`]) and the configuration files ([`files`]). The
//! async driver in [`crate::daemon`] feeds them events and executes their
//! actions; it decides nothing itself.

pub mod cameras;
pub mod converge;
pub mod disk;
pub mod files;
pub mod process;

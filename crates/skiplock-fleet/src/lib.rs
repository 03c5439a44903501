//! # skiplock-fleet
//!
//! Real skiplock worker processes, and the tools to break things around them:
//! for tests that need several processes (sharing work, crashes, rescues) and
//! for the fault tests and soak behind `docs/GUARANTEES.md`. Not published.
//!
//! | module | what lives there |
//! |---|---|
//! | [`fleet`] | [`Fleet`]: worker processes of the `skiplock-fleet-worker` binary (`src/main.rs`), started, signalled, killed |
//! | [`proxy`] | [`Proxy`]: a TCP proxy between workers and PostgreSQL that drops, stalls or refuses connections |
//! | [`faults`] | loops that inject one kind of fault until told to stop: SIGKILL, `pg_terminate_backend`, the proxy |
//! | [`audit`] | what was enqueued, where each job ended, whether executions overlapped: [`Audit`] |
//! | [`soak`] | `skiplock-fleet soak`: all of it at once, for minutes, on a private cluster |

pub mod audit;
pub mod faults;
pub mod fleet;
pub mod proxy;
pub mod soak;

pub use audit::{Audit, Overlap};
pub use fleet::Fleet;
pub use proxy::Proxy;

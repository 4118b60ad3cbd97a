//! Capacity from load reports: what clients measured (`measured`: reports summed over a
//! sliding window, per service, client region and upstream locality) and what follows from it
//! (`decisions`: how much of each client region's traffic each backend region takes, filling
//! the closest region up to its balancing-mode target and spilling the rest to the next).
//! Pure apart from the window's clock, which callers pass in. Must not: know xDS or publish;
//! the publisher feeds reports in and applies the decisions.

pub mod decisions;
pub mod measured;
pub mod report;
pub mod stability;

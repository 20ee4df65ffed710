//! `cluster rebalance`: which slots each group should receive so that every group owns a
//! share of the 16384 slots proportional to its weight (pure; the helper fills this in).

//! Bit sets of the command table: [`CommandFlags`], [`AclCategories`], [`KeySpecFlags`].
//!
//! Each constant carries the name Redis prints for it in `COMMAND INFO`, so the proxy can render the same reply.

use std::fmt;
use std::ops::{BitAnd, BitOr};

macro_rules! bitset {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$fmeta:meta])* $flag:ident = $bit:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name($repr);

        impl $name {
            /// No flag set.
            pub const EMPTY: $name = $name(0);
            $( $(#[$fmeta])* pub const $flag: $name = $name(1 << $bit); )*

            /// Every flag with the name Redis prints for it, in Redis's order.
            pub const NAMES: &'static [($name, &'static str)] = &[ $( ($name::$flag, $text), )* ];

            /// The union of `flags` (usable in `const` context, e.g. by the generated table).
            pub const fn of(flags: &[$name]) -> $name {
                let mut bits = 0;
                let mut i = 0;
                while i < flags.len() {
                    bits |= flags[i].0;
                    i += 1;
                }
                $name(bits)
            }

            /// The raw bits.
            pub const fn bits(self) -> $repr {
                self.0
            }

            /// True if every flag of `other` is set in `self`.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// True if any flag of `other` is set in `self`.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            /// True if no flag is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The names of the flags set, in Redis's order (as `COMMAND INFO` prints them).
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| *n)
            }

            /// The flag Redis calls `name` (exact spelling, as in `COMMAND INFO`).
            pub fn from_name(name: &str) -> Option<$name> {
                Self::NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
            }
        }

        impl BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl BitAnd for $name {
            type Output = $name;
            fn bitand(self, rhs: $name) -> $name {
                $name(self.0 & rhs.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                for (i, n) in self.names().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    f.write_str(n)?;
                }
                f.write_str(")")
            }
        }
    };
}

bitset! {
    /// Command flags, as `COMMAND INFO` prints them (Redis hides a few internal ones, e.g. `may_replicate`).
    CommandFlags: u32 {
        /// May modify the dataset.
        WRITE = 0 => "write",
        /// Only reads the dataset.
        READONLY = 1 => "readonly",
        /// May grow memory: refused under `maxmemory` pressure.
        DENYOOM = 2 => "denyoom",
        /// Implemented by a module.
        MODULE = 3 => "module",
        /// Administrative command.
        ADMIN = 4 => "admin",
        /// Pub/sub command.
        PUBSUB = 5 => "pubsub",
        /// Not allowed in scripts.
        NOSCRIPT = 6 => "noscript",
        /// May block the client.
        BLOCKING = 7 => "blocking",
        /// Allowed while the dataset is loading.
        LOADING = 8 => "loading",
        /// Allowed on a replica with a stale dataset.
        STALE = 9 => "stale",
        /// Not shown by `MONITOR`.
        SKIP_MONITOR = 10 => "skip_monitor",
        /// Not recorded in the slow log.
        SKIP_SLOWLOG = 11 => "skip_slowlog",
        /// Cluster: allowed on an importing slot after `ASKING`.
        ASKING = 12 => "asking",
        /// O(1) or O(log N).
        FAST = 13 => "fast",
        /// Allowed before authentication.
        NO_AUTH = 14 => "no_auth",
        /// May run with no key even though it takes keys (e.g. `EVAL` with 0 keys).
        NO_MANDATORY_KEYS = 15 => "no_mandatory_keys",
        /// Refused while a replica loads asynchronously.
        NO_ASYNC_LOADING = 16 => "no_async_loading",
        /// Not allowed inside `MULTI`.
        NO_MULTI = 17 => "no_multi",
        /// Key positions cannot be told from `first_key`/`last_key`/`step` alone.
        MOVABLEKEYS = 18 => "movablekeys",
        /// Allowed while a script or function is busy.
        ALLOW_BUSY = 19 => "allow_busy",
        /// Module command that refuses to run in cluster mode.
        MODULE_NO_CLUSTER = 20 => "module_no_cluster",
    }
}

bitset! {
    /// ACL categories of a command (`@read`, `@write`, ... without the `@`).
    AclCategories: u32 {
        /// `@keyspace`
        KEYSPACE = 0 => "keyspace",
        /// `@read`
        READ = 1 => "read",
        /// `@write`
        WRITE = 2 => "write",
        /// `@set`
        SET = 3 => "set",
        /// `@sortedset`
        SORTEDSET = 4 => "sortedset",
        /// `@list`
        LIST = 5 => "list",
        /// `@hash`
        HASH = 6 => "hash",
        /// `@string`
        STRING = 7 => "string",
        /// `@bitmap`
        BITMAP = 8 => "bitmap",
        /// `@hyperloglog`
        HYPERLOGLOG = 9 => "hyperloglog",
        /// `@geo`
        GEO = 10 => "geo",
        /// `@stream`
        STREAM = 11 => "stream",
        /// `@pubsub`
        PUBSUB = 12 => "pubsub",
        /// `@admin`
        ADMIN = 13 => "admin",
        /// `@fast`
        FAST = 14 => "fast",
        /// `@slow`
        SLOW = 15 => "slow",
        /// `@blocking`
        BLOCKING = 16 => "blocking",
        /// `@dangerous`
        DANGEROUS = 17 => "dangerous",
        /// `@connection`
        CONNECTION = 18 => "connection",
        /// `@transaction`
        TRANSACTION = 19 => "transaction",
        /// `@scripting`
        SCRIPTING = 20 => "scripting",
    }
}

bitset! {
    /// Flags of one [`KeySpec`](super::KeySpec): how the command uses the keys it finds.
    KeySpecFlags: u16 {
        /// Read-only access.
        RO = 0 => "RO",
        /// Read-write access.
        RW = 1 => "RW",
        /// Overwrite: the old value is not read.
        OW = 2 => "OW",
        /// Removes the key.
        RM = 3 => "RM",
        /// Returns, copies or uses user data from the key.
        ACCESS = 4 => "access",
        /// Updates data of the key.
        UPDATE = 5 => "update",
        /// Adds data, never modifies or deletes existing data.
        INSERT = 6 => "insert",
        /// Deletes data from the key.
        DELETE = 7 => "delete",
        /// Not a key, but hashed like one (shard channels of `SPUBLISH`/`SSUBSCRIBE`).
        NOT_KEY = 8 => "not_key",
        /// The spec may miss keys: Redis falls back to the command's own key finder.
        INCOMPLETE = 9 => "incomplete",
        /// The flags depend on the arguments (e.g. `SET ... GET`).
        VARIABLE_FLAGS = 10 => "variable_flags",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_names_and_debug() {
        let f = CommandFlags::of(&[CommandFlags::FAST, CommandFlags::WRITE]);
        assert_eq!(f, CommandFlags::WRITE | CommandFlags::FAST);
        assert!(f.contains(CommandFlags::WRITE));
        assert!(!f.contains(CommandFlags::WRITE | CommandFlags::READONLY));
        assert!(f.intersects(CommandFlags::WRITE | CommandFlags::READONLY));
        assert_eq!(f.names().collect::<Vec<_>>(), ["write", "fast"]);
        assert_eq!(format!("{f:?}"), "CommandFlags(write | fast)");
        assert_eq!(f & CommandFlags::FAST, CommandFlags::FAST);
        assert!(CommandFlags::EMPTY.is_empty());
        assert_eq!(CommandFlags::from_name("movablekeys"), Some(CommandFlags::MOVABLEKEYS));
        assert_eq!(KeySpecFlags::from_name("not_key"), Some(KeySpecFlags::NOT_KEY));
        assert_eq!(AclCategories::from_name("nope"), None);
    }

    #[test]
    fn bits_are_distinct() {
        fn check<T: Copy>(names: &[(T, &str)], bits: impl Fn(T) -> u64) {
            let mut all = 0u64;
            for (f, n) in names {
                let b = bits(*f);
                assert_eq!(b.count_ones(), 1, "{n}");
                assert_eq!(all & b, 0, "{n}");
                all |= b;
            }
        }
        check(CommandFlags::NAMES, |f| f.bits().into());
        check(AclCategories::NAMES, |f| f.bits().into());
        check(KeySpecFlags::NAMES, |f| f.bits().into());
    }
}

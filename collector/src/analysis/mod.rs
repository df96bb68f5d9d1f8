//! Data-plane analysis: which AS each trace enters the target AS through, and whether BGP
//! announces that upstream.
//!
//! Everything here is computed on the fly from the stored results (the JSON of each trace as
//! received) and the loaded BGP data; nothing derived is stored. This is a pure core: no
//! database, no DNS, no runtime. [`trace::Analyzer`] takes traces as values and its other
//! inputs through a trait or as a value: BGP data through a [`BgpSource`] (the database is
//! one, [`MemoryBgp`], routes held in memory, another, so every rule below has unit tests
//! without SQL), addresses BGP does not cover through an
//! [`OriginLookup`](cymru::OriginLookup), IXP prefixes as an [`IxpTable`](ixp::IxpTable).
//! The adapters that fill them from the database, the DNS and files live outside the core,
//! in `sources/`.
//!
//! Modules: [`hopmap`] (hop-to-AS mapping), [`special`] (special-purpose address ranges),
//! [`ixp`] (the IXP table), [`cymru`] (the origin lookup trait, Team Cymru answers read),
//! [`entry`] (entry AS), [`verdict`] (announced sets, verdicts), [`source`] (the BGP source
//! trait), [`trace`] (one trace through all of them), [`units`] (counting units).
//!
//! These definitions are the contract of every report and export:
//!
//! # Hop-to-AS mapping ([`hopmap`])
//!
//! Each responding address is classified, in this order:
//! 1. **private** (RFC 1918, loopback, link-local, documentation, benchmarking, reserved,
//!    multicast, "this network") and **shared** (100.64.0.0/10, RFC 6598): marked, never
//!    mapped to an AS.
//! 2. **ixp**: inside a prefix of the loaded IXP list (`nkpath-collector ixp load`; PeeringDB
//!    `ixpfx.json` or PCH `ixp_subnets.csv`): marked with the exchange's name, never mapped.
//! 3. **public AS**: longest-prefix match over the origins in the BGP state at the trace's
//!    start time ([`BgpState::at`](crate::bgp::BgpState::at)), over prefixes of /8 to /24
//!    only ([`hopmap::DEFAULT_MAP_LENGTHS`], as CAIDA's prefix-to-AS: a default route or a
//!    link /30 never names an origin); one origin maps the hop to it. Several origins (MOAS)
//!    are not forced into one AS: the hop is **multi-origin**. A prefix seen by one peer of
//!    three or more is flagged ([`hopmap::MappingNote::thin`]).
//! 4. Otherwise, when DNS lookups are on, Team Cymru's origin TXT record
//!    (`D.C.B.A.origin.asn.cymru.com`, at `--resolver ADDR` or the system resolver; answers
//!    stored in the database with their lookup time and reused for seven days,
//!    `sources::cymru_cache::CYMRU_CACHE_TTL`, failures not stored); else
//!    **unmapped**. With `--no-dns` the stored answers are not used either.
//!
//! Only the collector's own data maps a hop: the mapper sees the address alone. An origin AS
//! an agent sends with its trace (older agents annotated hops from Team Cymru) is never
//! read, so a volunteer cannot forge an entry AS.
//!
//! # Entry AS ([`entry`])
//!
//! Hops are taken by TTL, and every address that replied at a TTL counts (several answer one
//! TTL behind a load balancer or across a route change). The *target TTL* is the first TTL
//! with a reply that maps to the target AS. The *entry TTL* is the last TTL before it (before
//! the end of the trace when the target AS never answers) with a reply that maps to a public
//! AS other than the target AS. When replies of **several such ASes** come from the entry TTL,
//! there is no single entry AS: the entry is `unknown` and the verdict `ambiguous`, reason
//! `several-entry-ases`, naming each AS, its address and whether the announced set holds it.
//! Otherwise that AS is the **entry AS**. It is **inferred** (not observed) when another
//! address of the entry TTL maps to no public AS, when the target TTL also has a reply of a
//! public AS outside the target (probes that had not entered yet), when between the entry
//! TTL and the target TTL lies an IXP, private, shared, multi-origin or unmapped reply or a
//! silent TTL, when a hop from the entry hop to the target hop quoted an
//! MPLS label stack (RFC 4950: the tunnel hides hops), when a hop from the entry hop to the
//! target hop was inherited (taken by the agent from another trace of its survey, a
//! Doubletree stop set, instead of probed with this trace's flow; inherited hops count as
//! replies for mapping everywhere else), when the entry hop's mapping prefix
//! is flagged, or when the target AS never answers. It is **unknown** when there is no such
//! hop, or when the only such hop is in the agent's own AS (the AS of its source address) and
//! the target AS never answers: nothing was seen beyond the agent's AS.
//!
//! ICMP semantics (each reply's meaning is [`nkpath_proto::ReplyKind`], read once from the
//! wire numbers): when the target AS never answers and every reply of the last replying TTL
//! is a destination unreachable from a router (any code but 2 and 3, the destination's own
//! protocol and port unreachable), the probes never entered the target AS as far as the data
//! shows: the entry is unknown, reason `filtered-in ASn` (administratively prohibited, codes
//! 9, 10, 13) or `unreachable-in ASn`, ASn being the AS the first such address maps to.
//!
//! # Announced set ([`verdict`])
//!
//! The announced set of a trace is the set of upstreams (the public AS directly before the
//! origin in a collector peer's AS path, [`crate::bgp::upstream`]) of the most specific
//! prefix originated by the target AS that covers the target address and is seen by at least
//! one collector peer in the BGP state at the trace's time. Less specific such prefixes are
//! the *covering* prefixes.
//!
//! # Verdict ([`verdict`])
//!
//! - `unknown`: no BGP data at the trace's time (reason "no BGP data"), BGP data older than
//!   the maximum age (default 24 h; reason `stale-bgp`, the age being the trace's start minus
//!   the end of the newest RIB dump or update file before it), no entry AS ("no entry AS"),
//!   or no announced prefix covers the target ("target not announced");
//! - `match`: the entry AS is in the announced set;
//! - `match-covering`: it is only in the set of a less specific covering prefix;
//! - `ambiguous` (reason "border"): in neither, but the entry AS stands next to an announced
//!   upstream of the most specific prefix in some loaded AS path (of any time): the border
//!   link may be numbered from the entry AS's space;
//! - `ambiguous` (reason `several-entry-ases`): see the entry AS above (with BGP data that
//!   is not stale and a target that is announced);
//! - `ambiguous` (reason `entry-in-target-block`), whatever the above: the entry hop's
//!   address lies in a prefix announced by the target AS but a more specific prefix of another
//!   AS maps it, so the router may be the target's own;
//! - `mismatch`: in neither, and no loaded AS path has it next to an announced upstream.
//!
//! Inferred entries get verdicts too; reports count observed and inferred entries in
//! separate columns. A trace within the transition window (default 15 minutes) of a change
//! of the announced set of any target-AS prefix covering its target
//! ([`crate::bgp::timeline::upstream_changes`]) is flagged **transitional**.
//!
//! # Control-plane comparison
//!
//! When a collector peer is in the agent's AS, the trace's data-plane AS path (public ASes of
//! its hops in order, repeats collapsed, starting with the agent's AS) is compared with that
//! peer's AS path for the announced prefix at the trace's time; ASes on one path but not the
//! other are listed.
//!
//! # Units ([`units`])
//!
//! Upstream shares count, by default, one unit per (agent, target /24, round): the unit takes
//! the entry AS (or `unknown`) held by more than half of its traces, else `unknown`; it is
//! inferred unless one of its traces with that entry AS was observed.

pub mod cymru;
pub mod entry;
mod error;
pub mod hopmap;
pub mod ixp;
pub mod multipath;
pub mod reachability;
pub mod source;
pub mod special;
pub mod trace;
pub mod units;
pub mod verdict;

pub use entry::{Entry, EntryHop, EntryReply, infer_entry};

pub use error::AnalysisError;
pub use hopmap::{HopClass, Mapper};
pub use source::{BgpSource, MemoryBgp};
pub use trace::{
    AnalysisOptions, AnalyzedHop, Analyzer, HopReply, MultipathAnalysis, TraceAnalysis,
};
pub use verdict::{Verdict, VerdictKind};

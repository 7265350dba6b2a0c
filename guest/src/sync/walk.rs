//! What a full walk (`staged.rs`) has done so far, as the delta cursor stores it: the
//! tenant-wide sources and their listings, the phase, the build's passes. Plain data with
//! its bookkeeping, apart from the walk's logic, so the cursor (`cursor.rs`) can hold it
//! without depending on the walk that moves it.

use serde::{Deserialize, Serialize};

use connector_sdk::doors::KvWrite;
use connector_sdk::error::ConnectorError;
use connector_sdk::state::encode;

/// The tenant-wide sources of a full walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// Sign-in data.
    SignIns,
    /// Group memberships.
    Groups,
    /// Role assignments.
    Roles,
    /// The registration report.
    Registration,
}

impl Source {
    /// The name an operator sees (`log.progress`).
    pub fn name(self) -> &'static str {
        match self {
            Source::SignIns => "sign-in data",
            Source::Groups => "groups",
            Source::Roles => "roles",
            Source::Registration => "registration report",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Source::SignIns => 0,
            Source::Groups => 1,
            Source::Roles => 2,
            Source::Registration => 3,
        }
    }

    pub(super) fn record(self) -> &'static str {
        match self {
            Source::SignIns => "s",
            Source::Groups => "g",
            Source::Roles => "r",
            Source::Registration => "m",
        }
    }
}

/// Where a full walk is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Reading the tenant-wide sources, interleaved.
    #[default]
    Sources,
    /// Joining the records into per-user facts.
    Build,
    /// The users themselves.
    Users,
}

/// One listing of a walk: where it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// The next link (None: the first page, or done).
    pub link: Option<String>,
    /// Pages done, all runs of the walk together.
    pub pages: u64,
    /// Items done.
    pub items: u64,
    /// Records written.
    pub records: u64,
    /// The listing is finished (read whole, or given up).
    pub done: bool,
    /// It was read whole: its records are complete.
    pub read: bool,
}

/// The state of a full walk, kept in the delta cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Walk {
    /// The generation this walk writes (facts and records).
    pub gen: String,
    /// The phase in flight.
    pub phase: Phase,
    /// The sources, by [`Source::index`].
    pub sources: [Listing; 4],
    /// The users listing (its next link is the cursor's `link`).
    pub users: Listing,
    /// Bytes of records written.
    pub record_bytes: u64,
    /// Users the sign-in data or the report listed (what bounds per-user listings).
    pub users_listed: u64,
    /// Eligible assignments were read.
    pub eligible_read: bool,
    /// A role-assignable group's members were refused: active roles are partial.
    #[serde(default)]
    pub roles_partial: bool,
    /// The same for eligible roles.
    #[serde(default)]
    pub eligible_partial: bool,
    /// Groups that hold a role.
    pub role_groups: Vec<String>,
    /// Admins shards written.
    pub admin_shards: u32,
    /// The groups delta link the groups listing ended with.
    pub groups_link: Option<String>,
    /// Build passes in all.
    pub passes: u32,
    /// Build passes done.
    pub passes_done: u32,
    /// Users delivered in this walk.
    pub users_delivered: u64,
    /// Optional data found unavailable in an earlier run of this walk.
    pub unavailable: Vec<String>,
    /// The source whose page was committed last (what progress names).
    #[serde(default)]
    pub last: Option<Source>,
    /// Where the build's scatter is.
    #[serde(default)]
    pub scatter: Scatter,
    /// The layout of the walk's keys ([`LAYOUT`]); a walk of another layout is started again.
    #[serde(default)]
    pub layout: u32,
}

/// The layout of the walk's keys: 2 writes sign-in data and the report as facts keys and
/// stages only memberships (1 staged every source).
pub const LAYOUT: u32 = 2;

/// Where the build's scatter is: fixed size but for one count per pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scatter {
    /// The next membership record to scatter.
    pub next: u64,
    /// Chunks written per bucket (pass).
    pub chunks: Vec<u32>,
    /// Every record was scattered.
    pub done: bool,
}

impl Walk {
    /// A fresh walk writing generation `gen`.
    pub fn new(gen: String) -> Walk {
        Walk {
            gen,
            layout: LAYOUT,
            ..Walk::default()
        }
    }

    pub(super) fn record_key(&self, source: Source, n: u64) -> String {
        format!("walk/{}/{}/{n:08}", self.gen, source.record())
    }

    /// The prefix of this walk's records.
    pub fn records_prefix(gen: &str) -> String {
        format!("walk/{gen}/")
    }

    /// A source's listing.
    pub fn source(&self, s: Source) -> &Listing {
        &self.sources[s.index()]
    }

    pub(super) fn source_mut(&mut self, s: Source) -> &mut Listing {
        &mut self.sources[s.index()]
    }

    /// Whether a source was read whole.
    pub fn read(&self, s: Source) -> bool {
        self.source(s).read
    }

    /// Ends a source: read whole (`read`), or given up.
    pub(super) fn end(&mut self, s: Source, read: bool) {
        let l = self.source_mut(s);
        l.link = None;
        l.done = true;
        l.read = read;
    }

    /// Writes one record of `source` (when it has rows) into `writes`.
    pub(super) fn record<T: Serialize>(
        &mut self,
        source: Source,
        rows: &[T],
        writes: &mut Vec<KvWrite>,
    ) -> Result<(), ConnectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        let bytes = encode(&rows)?;
        self.record_bytes = self.record_bytes.saturating_add(bytes.len() as u64);
        let n = self.source(source).records;
        writes.push(KvWrite::put(self.record_key(source, n), bytes));
        self.source_mut(source).records += 1;
        Ok(())
    }

    /// Counts a page of a listing with one item per user (sign-in data, the report) that
    /// brought `next`; returns whether the listing is finished (read whole).
    pub(super) fn per_user_page(
        &mut self,
        source: Source,
        items: usize,
        next: Option<String>,
    ) -> bool {
        let n = items as u64;
        self.users_listed = self
            .users_listed
            .max(self.source(source).items.saturating_add(n));
        let l = self.source_mut(source);
        l.items = l.items.saturating_add(n);
        l.pages += 1;
        l.link = next;
        let done = l.link.is_none();
        if done {
            self.end(source, true);
        }
        done
    }

    pub(super) fn unavailable(&mut self, what: &str) {
        if !self.unavailable.iter().any(|u| u == what) {
            self.unavailable.push(what.to_string());
        }
    }
}

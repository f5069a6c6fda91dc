//! What every handler shares.

use std::sync::Arc;

use service_kit::Db;

use crate::config::Config;
use crate::events::EventStats;

/// Shared handler state: the database, the settings and the event counters.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
    pub(crate) events: Arc<EventStats>,
}

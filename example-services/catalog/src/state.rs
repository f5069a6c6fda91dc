//! What every handler shares.

use std::sync::Arc;

use service_kit::Db;

use crate::config::Config;

/// Shared handler state: the database and the settings.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
}

//! What every handler shares.

use std::sync::Arc;

use service_kit::Db;

use crate::faults::Faults;

/// Shared handler state.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) faults: Arc<Faults>,
}

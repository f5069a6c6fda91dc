//! Compensation that outlives a failing world (SQLite): a refund the payment
//! service refuses for a while is retried with backoff, visible on the order,
//! across a restart, until it is done.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn a_refund_that_fails_is_retried_until_done_across_a_restart() {
    // Reservations expire at once, so the commit after payment is refused.
    let peers = Peers::start_with(Duration::ZERO).await;
    let mut config = peers.order_config();
    // Far away: every retry below comes from the refund's own schedule.
    config.recovery_interval = Duration::from_secs(600);
    refund::refund_survives_failures_and_a_restart(&peers, config).await;
}

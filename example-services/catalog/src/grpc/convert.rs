//! The REST API's types as the gRPC API's messages, and back.

use super::pb;
use crate::model::ProductV2;
use crate::reservations::{
    COMMITTED, EXPIRED, HELD, RELEASED, Reservation, ReservationLine, ReservationRequest,
    ReservedItem,
};

impl From<ProductV2> for pb::Product {
    fn from(p: ProductV2) -> Self {
        Self {
            id: p.id,
            sku: p.sku,
            name: p.name,
            description: p.description,
            price_minor: p.price.amount,
            currency: p.price.currency,
            stock: p.stock,
            units_sold: p.units_sold,
        }
    }
}

impl From<Reservation> for pb::Reservation {
    fn from(r: Reservation) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id,
            status: status(&r.status) as i32,
            total_minor: r.total_minor,
            currency: r.currency,
            expires_at_ms: r.expires_at_ms,
            items: r.items.into_iter().map(pb::ReservedItem::from).collect(),
        }
    }
}

impl From<ReservedItem> for pb::ReservedItem {
    fn from(i: ReservedItem) -> Self {
        Self {
            product_id: i.product_id,
            quantity: i.quantity,
            unit_price_minor: i.unit_price_minor,
            currency: i.currency,
        }
    }
}

impl From<pb::ReserveStockRequest> for ReservationRequest {
    fn from(r: pb::ReserveStockRequest) -> Self {
        Self {
            order_id: r.order_id,
            items: r
                .items
                .into_iter()
                .map(|line| ReservationLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                })
                .collect(),
        }
    }
}

fn status(stored: &str) -> pb::ReservationStatus {
    match stored {
        HELD => pb::ReservationStatus::Held,
        COMMITTED => pb::ReservationStatus::Committed,
        RELEASED => pb::ReservationStatus::Released,
        EXPIRED => pb::ReservationStatus::Expired,
        _ => pb::ReservationStatus::Unspecified,
    }
}

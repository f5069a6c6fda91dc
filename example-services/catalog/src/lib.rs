//! Catalog example service: products and stock reservations.

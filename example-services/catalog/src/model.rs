//! The catalog's API types and their validation.
//!
//! v1 carries the price as two flat fields (`price_minor`, `currency`); v2 nests
//! them as `price: {amount, currency}`. That is the documented breaking change
//! between the versions; everything else is the same.

use serde::{Deserialize, Serialize};
use service_kit::Problem;
use utoipa::ToSchema;

/// A product as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ProductRow {
    pub(crate) id: String,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price_minor: i64,
    pub(crate) currency: String,
    pub(crate) stock: i64,
    /// From the order-events read model; 0 when a query does not select it.
    #[sqlx(default)]
    pub(crate) units_sold: i64,
}

/// A product, v1 representation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Longer description.
    pub description: String,
    /// Price in minor units of `currency` (cents).
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Units available to reserve.
    pub stock: i64,
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Self {
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            price_minor: row.price_minor,
            currency: row.currency,
            stock: row.stock,
        }
    }
}

/// A price, v2 representation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Price {
    /// Amount in minor units of `currency` (cents).
    pub amount: i64,
    /// ISO 4217 currency code.
    pub currency: String,
}

/// A product, v2 representation: the price is an object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductV2 {
    /// Product id.
    pub id: String,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Longer description.
    pub description: String,
    /// Price.
    pub price: Price,
    /// Units available to reserve.
    pub stock: i64,
    /// Units sold in confirmed orders, as counted from the order events
    /// (eventually consistent: it trails a confirmation by the time the
    /// event takes over the bus).
    pub units_sold: i64,
}

impl From<ProductRow> for ProductV2 {
    fn from(row: ProductRow) -> Self {
        Self {
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            price: Price {
                amount: row.price_minor,
                currency: row.currency,
            },
            stock: row.stock,
            units_sold: row.units_sold,
        }
    }
}

/// One page of products.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage<T> {
    /// The products, ordered by id.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST`/`PUT /v1/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Stock-keeping unit: 1–64 letters, digits, `-` or `_`; unique.
    pub sku: String,
    /// Display name, 1–200 characters.
    pub name: String,
    /// Description, up to 2000 characters.
    #[serde(default)]
    pub description: String,
    /// Price in minor units, 0 to 10^12.
    pub price_minor: i64,
    /// ISO 4217 code: three upper-case letters.
    pub currency: String,
    /// Units in stock, 0 to 10^9.
    pub stock: i64,
}

impl ProductInput {
    /// Checks every field, naming the first bad one.
    pub(crate) fn validate(&self) -> Result<(), Problem> {
        let sku_ok = (1..=64).contains(&self.sku.len())
            && self
                .sku
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !sku_ok {
            return Err(Problem::invalid(
                "sku",
                "must be 1-64 letters, digits, '-' or '_'",
            ));
        }
        let name_len = self.name.trim().chars().count();
        if !(1..=200).contains(&name_len) {
            return Err(Problem::invalid("name", "must be 1-200 characters"));
        }
        if self.description.chars().count() > 2000 {
            return Err(Problem::invalid(
                "description",
                "must be at most 2000 characters",
            ));
        }
        if !(0..=1_000_000_000_000).contains(&self.price_minor) {
            return Err(Problem::invalid(
                "price_minor",
                "must be between 0 and 10^12",
            ));
        }
        validate_currency("currency", &self.currency)?;
        if !(0..=1_000_000_000).contains(&self.stock) {
            return Err(Problem::invalid("stock", "must be between 0 and 10^9"));
        }
        Ok(())
    }
}

/// Checks an ISO 4217-shaped code.
pub(crate) fn validate_currency(field: &str, currency: &str) -> Result<(), Problem> {
    if currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Problem::invalid(
            field,
            "must be a three-letter upper-case ISO 4217 code",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProductInput {
        ProductInput {
            sku: "MUG-1".into(),
            name: "Mug".into(),
            description: String::new(),
            price_minor: 1200,
            currency: "EUR".into(),
            stock: 3,
        }
    }

    #[test]
    fn names_the_bad_field() {
        assert!(input().validate().is_ok());
        let mut bad = input();
        bad.currency = "eur".into();
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("currency")
        );
        let mut bad = input();
        bad.stock = -1;
        assert_eq!(bad.validate().unwrap_err().field.as_deref(), Some("stock"));
        let mut bad = input();
        bad.sku = "has space".into();
        assert_eq!(bad.validate().unwrap_err().field.as_deref(), Some("sku"));
    }
}

//! The products a fresh catalog starts with, so the demo has something to show.
//!
//! Loaded once, into an empty products table; a catalog that already has
//! products (or `seed: false`) is left alone.

use service_kit::{Db, now_millis};

struct Seed {
    sku: &'static str,
    name: &'static str,
    description: &'static str,
    price_minor: i64,
    stock: i64,
}

/// Prices are in euro cents. One product is out of stock every so often and the
/// limited edition mug has a single unit, for demonstrating sold-out handling.
const PRODUCTS: &[Seed] = &[
    Seed {
        sku: "WEIR-1001",
        name: "Espresso Cup Set",
        description: "Four porcelain espresso cups with saucers.",
        price_minor: 2400,
        stock: 87,
    },
    Seed {
        sku: "WEIR-1002",
        name: "French Press 1L",
        description: "Borosilicate glass press with a steel filter.",
        price_minor: 3490,
        stock: 43,
    },
    Seed {
        sku: "WEIR-1003",
        name: "Burr Coffee Grinder",
        description: "Conical steel burrs, 40 grind settings.",
        price_minor: 8900,
        stock: 106,
    },
    Seed {
        sku: "WEIR-1004",
        name: "Pour-Over Kettle",
        description: "Gooseneck kettle with thermometer, 1.2 L.",
        price_minor: 4590,
        stock: 171,
    },
    Seed {
        sku: "WEIR-1005",
        name: "Ceramic Dripper",
        description: "Single-cup pour-over dripper, size 02.",
        price_minor: 1890,
        stock: 17,
    },
    Seed {
        sku: "WEIR-1006",
        name: "Paper Filters (100)",
        description: "Unbleached filters for size 02 drippers.",
        price_minor: 590,
        stock: 23,
    },
    Seed {
        sku: "WEIR-1007",
        name: "Whole Bean Coffee, Ethiopia",
        description: "Washed Yirgacheffe, light roast, 250 g.",
        price_minor: 1350,
        stock: 142,
    },
    Seed {
        sku: "WEIR-1008",
        name: "Whole Bean Coffee, Colombia",
        description: "Huila, medium roast, 250 g.",
        price_minor: 1190,
        stock: 29,
    },
    Seed {
        sku: "WEIR-1009",
        name: "Whole Bean Coffee, Decaf",
        description: "Swiss water process, medium roast, 250 g.",
        price_minor: 1250,
        stock: 98,
    },
    Seed {
        sku: "WEIR-1010",
        name: "Loose Leaf Green Tea",
        description: "Sencha from Shizuoka, 100 g tin.",
        price_minor: 1490,
        stock: 154,
    },
    Seed {
        sku: "WEIR-1011",
        name: "Earl Grey Tea",
        description: "Black tea with bergamot, 125 g.",
        price_minor: 990,
        stock: 19,
    },
    Seed {
        sku: "WEIR-1012",
        name: "Cast Iron Teapot",
        description: "Tetsubin style, 0.8 L, with infuser.",
        price_minor: 5990,
        stock: 134,
    },
    Seed {
        sku: "WEIR-1013",
        name: "Milk Frother",
        description: "Handheld, battery powered.",
        price_minor: 1590,
        stock: 0,
    },
    Seed {
        sku: "WEIR-1014",
        name: "Travel Mug",
        description: "Double-walled steel, 350 ml, leak-proof lid.",
        price_minor: 2290,
        stock: 59,
    },
    Seed {
        sku: "WEIR-1015",
        name: "Stoneware Mug",
        description: "Hand-glazed, 300 ml.",
        price_minor: 1490,
        stock: 14,
    },
    Seed {
        sku: "WEIR-1016",
        name: "Digital Kitchen Scale",
        description: "0.1 g precision with timer.",
        price_minor: 2990,
        stock: 27,
    },
    Seed {
        sku: "WEIR-1017",
        name: "Chef's Knife 20cm",
        description: "Stainless steel, full tang.",
        price_minor: 7900,
        stock: 116,
    },
    Seed {
        sku: "WEIR-1018",
        name: "Bamboo Cutting Board",
        description: "Large, with juice groove.",
        price_minor: 3290,
        stock: 112,
    },
    Seed {
        sku: "WEIR-1019",
        name: "Cast Iron Skillet 26cm",
        description: "Pre-seasoned.",
        price_minor: 3990,
        stock: 22,
    },
    Seed {
        sku: "WEIR-1020",
        name: "Dutch Oven 5L",
        description: "Enamelled cast iron.",
        price_minor: 11900,
        stock: 66,
    },
    Seed {
        sku: "WEIR-1021",
        name: "Silicone Spatula Set",
        description: "Three heat-resistant spatulas.",
        price_minor: 1290,
        stock: 28,
    },
    Seed {
        sku: "WEIR-1022",
        name: "Linen Apron",
        description: "Washed linen with two pockets.",
        price_minor: 3490,
        stock: 146,
    },
    Seed {
        sku: "WEIR-1023",
        name: "Oven Mitts (pair)",
        description: "Quilted cotton, heat resistant to 250 C.",
        price_minor: 1690,
        stock: 113,
    },
    Seed {
        sku: "WEIR-1024",
        name: "Glass Storage Jars (3)",
        description: "Airtight lids, 1 L each.",
        price_minor: 2490,
        stock: 20,
    },
    Seed {
        sku: "WEIR-1025",
        name: "Olive Oil, Extra Virgin",
        description: "Cold pressed, 500 ml.",
        price_minor: 1590,
        stock: 149,
    },
    Seed {
        sku: "WEIR-1026",
        name: "Sea Salt Flakes",
        description: "Hand harvested, 250 g.",
        price_minor: 690,
        stock: 0,
    },
    Seed {
        sku: "WEIR-1027",
        name: "Pepper Mill",
        description: "Beech wood with ceramic grinder.",
        price_minor: 2790,
        stock: 36,
    },
    Seed {
        sku: "WEIR-1028",
        name: "Cookbook: Weeknight Dinners",
        description: "120 recipes in under 30 minutes.",
        price_minor: 2490,
        stock: 62,
    },
    Seed {
        sku: "WEIR-1029",
        name: "Cookbook: Bread Basics",
        description: "Sourdough, yeasted and flat breads.",
        price_minor: 2790,
        stock: 166,
    },
    Seed {
        sku: "WEIR-1030",
        name: "Sourdough Starter Kit",
        description: "Dried starter, jar and guide.",
        price_minor: 1990,
        stock: 165,
    },
    Seed {
        sku: "WEIR-1031",
        name: "Proofing Basket",
        description: "Rattan banneton, 25 cm round.",
        price_minor: 1790,
        stock: 154,
    },
    Seed {
        sku: "WEIR-1032",
        name: "Bench Scraper",
        description: "Stainless steel with measurements.",
        price_minor: 990,
        stock: 20,
    },
    Seed {
        sku: "WEIR-1033",
        name: "Stand Mixer",
        description: "4.8 L bowl, 10 speeds.",
        price_minor: 34900,
        stock: 152,
    },
    Seed {
        sku: "WEIR-1034",
        name: "Espresso Machine",
        description: "15 bar pump, steam wand.",
        price_minor: 29900,
        stock: 154,
    },
    Seed {
        sku: "WEIR-1035",
        name: "Water Filter Jug",
        description: "2.4 L with one cartridge.",
        price_minor: 2990,
        stock: 106,
    },
    Seed {
        sku: "WEIR-1036",
        name: "Replacement Filter Cartridges (3)",
        description: "For the water filter jug.",
        price_minor: 1890,
        stock: 17,
    },
    Seed {
        sku: "WEIR-1037",
        name: "Limited Edition Mug",
        description: "Numbered, only a few made.",
        price_minor: 3900,
        stock: 1,
    },
];

/// Inserts the seed products if the catalog is empty; returns how many were inserted.
pub(crate) async fn seed_if_empty(db: &Db) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
        .fetch_one(&mut *tx)
        .await?;
    if count > 0 {
        return Ok(0);
    }
    let now = now_millis();
    for seed in PRODUCTS {
        sqlx::query(
            "INSERT INTO products (id, sku, name, description, price_minor, currency, stock, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'EUR', $6, $7, $7)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(seed.sku)
        .bind(seed.name)
        .bind(seed.description)
        .bind(seed.price_minor)
        .bind(seed.stock)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(products = PRODUCTS.len(), "catalog seeded");
    Ok(PRODUCTS.len())
}

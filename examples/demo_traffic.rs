//! Traffic for `make demo`: sends requests through strangler and prints how they split, using
//! the `x-strangler-side` header the demo routes expose.
//!
//! Usage: `demo_traffic PROXY_URL`

use std::collections::BTreeMap;

async fn split(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    user_header: bool,
) -> Result<BTreeMap<String, usize>, reqwest::Error> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let mut req = client.get(url);
        if user_header {
            req = req.header("x-user-id", format!("user-{}", i % 50));
        }
        let resp = req.send().await?;
        let side = resp.headers().get("x-strangler-side").and_then(|v| v.to_str().ok()).unwrap_or("?").to_string();
        let status = resp.status().as_u16();
        resp.bytes().await?;
        *seen.entry(format!("{side} ({status})")).or_insert(0) += 1;
    }
    Ok(seen)
}

fn show(label: &str, seen: &BTreeMap<String, usize>) {
    let total: usize = seen.values().sum();
    let parts: Vec<String> =
        seen.iter().map(|(k, v)| format!("{k}: {v} ({:.1}%)", *v as f64 * 100.0 / total.max(1) as f64)).collect();
    println!("  {label:<34} {}", parts.join("   "));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:18080".to_string());
    let client = reqwest::Client::new();
    show("GET /orders      x300", &split(&client, &format!("{base}/orders"), 300, false).await?);
    show("GET /orders/42   x50", &split(&client, &format!("{base}/orders/42"), 50, false).await?);
    show("GET /orders/abc  x10", &split(&client, &format!("{base}/orders/abc"), 10, false).await?);
    show("GET /users/7     x200, 50 users", &split(&client, &format!("{base}/users/7"), 200, true).await?);
    let forced = client.get(format!("{base}/orders/abc")).header("x-strangler-target", "new").send().await?;
    println!("  GET /orders/abc forced to new      -> {} {}", forced.status().as_u16(), forced.text().await?.trim());
    Ok(())
}

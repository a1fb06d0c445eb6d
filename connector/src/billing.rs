//! What reading the stream costs on X's pay-per-use plan: each post is billed once per UTC day
//! ($0.005 by default) toward a monthly cap (3 M posts). Counted here as the posts that pass
//! deduplication (so a post X sends twice is counted once), starting over each UTC day, with
//! warnings at 80% and 95% of `monthly_cap`. The count starts with the process: X's own
//! month-to-date figure is in the developer console.

use connector_runtime::metrics::{Counter, FloatCounter, Gauge, Metrics};

use crate::config::BillingConfig;

const DAY_MS: i64 = 86_400_000;

pub struct Billing {
    price: f64,
    monthly_cap: Option<u64>,
    /// The UTC day and month (days since the epoch; year * 12 + month) now counted.
    day: i64,
    month: i64,
    posts_today: Gauge,
    posts_this_month: u64,
    /// The share of the cap already warned about this month (0, 80, 95).
    warned: u64,
    billable: Counter,
    cost: FloatCounter,
}

impl Billing {
    pub fn new(cfg: &BillingConfig, metrics: &Metrics) -> Self {
        Self {
            price: cfg.price_per_post_usd,
            monthly_cap: cfg.monthly_cap,
            day: i64::MIN,
            month: i64::MIN,
            posts_today: metrics.gauge(
                "posts_billable_today",
                "posts billed today (UTC): each post once a day",
            ),
            posts_this_month: 0,
            warned: 0,
            billable: metrics.counter(
                "posts_billable_total",
                "posts X bills (once per post and UTC day) since start",
            ),
            cost: metrics.float_counter(
                "estimated_cost_usd_total",
                "the billable posts at price_per_post_usd, since start",
            ),
        }
    }

    /// A post delivered (first time seen) at `now_ms`.
    pub fn post(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.posts_today.set(0);
            let month = month_of(day);
            if month != self.month {
                self.month = month;
                self.posts_this_month = 0;
                self.warned = 0;
            }
        }
        self.posts_today.set(self.posts_today.get() + 1);
        self.posts_this_month += 1;
        self.billable.inc();
        self.cost.add(self.price);
        if let Some(cap) = self.monthly_cap.filter(|c| *c > 0) {
            let share = self.posts_this_month * 100 / cap;
            for level in [80, 95] {
                if share >= level && self.warned < level {
                    self.warned = level;
                    tracing::warn!(
                        posts = self.posts_this_month,
                        monthly_cap = cap,
                        estimated_cost_usd = self.posts_this_month as f64 * self.price,
                        "{level}% of the monthly cap of posts read (since start); at the cap X answers UsageCapExceeded and the connector stops"
                    );
                }
            }
        }
    }
}

/// `year * 12 + month - 1` of a day since the epoch (UTC).
fn month_of(day: i64) -> i64 {
    let (y, m, _) = tweet_model::time::civil_from_days(day);
    y * 12 + m - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_posts_prices_them_and_starts_each_day_and_month_over() {
        let metrics = Metrics::new("t");
        let cfg = BillingConfig {
            price_per_post_usd: 0.25,
            monthly_cap: Some(10),
        };
        let mut b = Billing::new(&cfg, &metrics);
        // 2026-11-30, then 2026-12-01 (UTC).
        let nov30 = 1_796_083_200_000 - DAY_MS + 1000;
        for _ in 0..9 {
            b.post(nov30);
        }
        assert_eq!(metrics.value("posts_billable_today", &[]), 9);
        assert_eq!(b.warned, 80);
        b.post(nov30 + DAY_MS);
        assert_eq!(metrics.value("posts_billable_today", &[]), 1, "a new day");
        assert_eq!(b.posts_this_month, 1, "a new month");
        assert_eq!(b.warned, 0);
        assert_eq!(metrics.value("posts_billable_total", &[]), 10);
        assert_eq!(
            metrics.render_json()["estimated_cost_usd_total"],
            serde_json::json!(2.5)
        );
        assert_eq!(month_of(0), 1970 * 12);
    }
}

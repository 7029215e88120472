//! Retry delays: how long a failed task waits before its next attempt.
//!
//! The core has no clock and no random source, yet retries of many tasks that failed together
//! should not all fire together. Jitter is therefore a pure function of (policy seed, task
//! salt, retry number): replaying the same inputs gives the same delay, which keeps the
//! scheduler deterministic and testable, while different tasks spread out.
//!
//! All arithmetic saturates, so any retry number up to `u32::MAX` yields a delay within the cap.

use crate::error::{CoreError, CoreResult};

/// How the delay grows with the retry number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// base * 2^(retry-1), capped at `cap_ms`; `jitter` in [0,1] spreads each delay by
    /// ±jitter*delay (rounded to whole ms), and the result never exceeds cap_ms and never goes
    /// below 0.
    Exponential {
        base_ms: u64,
        cap_ms: u64,
        jitter: f64,
    },
    /// The same delay before every retry.
    Constant { delay_ms: u64 },
    /// base + step*(retry-1), capped at cap_ms.
    Linear {
        base_ms: u64,
        step_ms: u64,
        cap_ms: u64,
    },
}

/// A validated [`Backoff`] together with the seed of its jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    backoff: Backoff,
    seed: u64,
}

impl RetryPolicy {
    /// Validates: cap >= base for exponential and linear, jitter finite and in [0,1]; else
    /// [`CoreError::InvalidOption`] naming the value and the allowed range.
    pub fn new(backoff: Backoff, seed: u64) -> CoreResult<Self> {
        match backoff {
            Backoff::Exponential {
                base_ms,
                cap_ms,
                jitter,
            } => {
                check_cap("exponential", base_ms, cap_ms)?;
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(CoreError::InvalidOption(format!(
                        "backoff jitter is {jitter}; it must be a number from 0 to 1"
                    )));
                }
            }
            Backoff::Linear {
                base_ms, cap_ms, ..
            } => check_cap("linear", base_ms, cap_ms)?,
            Backoff::Constant { .. } => {}
        }
        Ok(RetryPolicy { backoff, seed })
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Delay in ms before retry number `retry` (1 = the first retry; 0 is treated as 1).
    /// Deterministic in (seed, salt, retry); different salts (tasks) spread out.
    pub fn delay_ms(&self, retry: u32, salt: u64) -> u64 {
        let steps = retry.max(1) - 1;
        match self.backoff {
            Backoff::Exponential {
                base_ms,
                cap_ms,
                jitter,
            } => {
                let delay = base_ms
                    .saturating_mul(2u64.saturating_pow(steps))
                    .min(cap_ms);
                if jitter == 0.0 {
                    return delay;
                }
                let spread = delay as f64 * jitter;
                let offset = (spread * unit_noise(self.seed, salt, retry)).round() as i128;
                (i128::from(delay) + offset).clamp(0, i128::from(cap_ms)) as u64
            }
            Backoff::Constant { delay_ms } => delay_ms,
            Backoff::Linear {
                base_ms,
                step_ms,
                cap_ms,
            } => base_ms
                .saturating_add(step_ms.saturating_mul(u64::from(steps)))
                .min(cap_ms),
        }
    }
}

fn check_cap(kind: &str, base_ms: u64, cap_ms: u64) -> CoreResult<()> {
    if cap_ms < base_ms {
        return Err(CoreError::InvalidOption(format!(
            "{kind} backoff cap_ms is {cap_ms}; it must be at least base_ms ({base_ms})"
        )));
    }
    Ok(())
}

/// A stable 64-bit hash of a task id, used as the jitter salt (FNV-1a).
pub fn salt_of(id: &str) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    id.bytes().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// A uniform value in [-1, 1) determined by its inputs.
fn unit_noise(seed: u64, salt: u64, retry: u32) -> f64 {
    let bits = splitmix64(splitmix64(splitmix64(seed) ^ salt) ^ u64::from(retry));
    // The top 53 bits fill an f64 mantissa exactly: a uniform value in [0, 1).
    let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
    unit * 2.0 - 1.0
}

/// One step of the splitmix64 generator: a strong, cheap mix of 64 bits.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy::new(backoff, 42).unwrap()
    }

    fn delays(policy: &RetryPolicy, retries: std::ops::RangeInclusive<u32>) -> Vec<u64> {
        retries.map(|retry| policy.delay_ms(retry, 7)).collect()
    }

    fn invalid_option_message(backoff: Backoff) -> String {
        match RetryPolicy::new(backoff, 0) {
            Err(CoreError::InvalidOption(message)) => message,
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }

    #[test]
    fn exponential_without_jitter() {
        let exponential = policy(Backoff::Exponential {
            base_ms: 1000,
            cap_ms: 10_000,
            jitter: 0.0,
        });
        assert_eq!(
            delays(&exponential, 1..=6),
            [1000, 2000, 4000, 8000, 10_000, 10_000]
        );
        assert_eq!(exponential.delay_ms(0, 7), 1000, "retry 0 counts as 1");
        assert_eq!(exponential.delay_ms(u32::MAX, 7), 10_000);
    }

    #[test]
    fn exponential_saturates_before_the_cap() {
        let uncapped = policy(Backoff::Exponential {
            base_ms: 3,
            cap_ms: u64::MAX,
            jitter: 0.0,
        });
        assert_eq!(uncapped.delay_ms(63, 0), 3 << 62);
        assert_eq!(uncapped.delay_ms(64, 0), u64::MAX);
        assert_eq!(uncapped.delay_ms(u32::MAX, 0), u64::MAX);
        let zero = policy(Backoff::Exponential {
            base_ms: 0,
            cap_ms: 5,
            jitter: 1.0,
        });
        assert_eq!(zero.delay_ms(u32::MAX, 0), 0);
    }

    #[test]
    fn constant() {
        let constant = policy(Backoff::Constant { delay_ms: 250 });
        assert_eq!(delays(&constant, 0..=3), [250, 250, 250, 250]);
        assert_eq!(constant.delay_ms(u32::MAX, 1), 250);
    }

    #[test]
    fn linear_with_cap() {
        let linear = policy(Backoff::Linear {
            base_ms: 100,
            step_ms: 300,
            cap_ms: 1000,
        });
        assert_eq!(delays(&linear, 0..=5), [100, 100, 400, 700, 1000, 1000]);
        assert_eq!(linear.delay_ms(u32::MAX, 7), 1000);
        let uncapped = policy(Backoff::Linear {
            base_ms: 1,
            step_ms: u64::MAX,
            cap_ms: u64::MAX,
        });
        assert_eq!(uncapped.delay_ms(3, 0), u64::MAX);
    }

    #[test]
    fn cap_below_base_is_rejected() {
        let message = invalid_option_message(Backoff::Exponential {
            base_ms: 1000,
            cap_ms: 999,
            jitter: 0.0,
        });
        assert_eq!(
            message,
            "exponential backoff cap_ms is 999; it must be at least base_ms (1000)"
        );
        let message = invalid_option_message(Backoff::Linear {
            base_ms: 10,
            step_ms: 1,
            cap_ms: 5,
        });
        assert_eq!(
            message,
            "linear backoff cap_ms is 5; it must be at least base_ms (10)"
        );
    }

    #[test]
    fn jitter_outside_zero_to_one_is_rejected() {
        for jitter in [-0.1, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let message = invalid_option_message(Backoff::Exponential {
                base_ms: 1,
                cap_ms: 1,
                jitter,
            });
            assert!(message.contains("jitter") && message.contains("from 0 to 1"));
        }
        for jitter in [0.0, 0.5, 1.0] {
            let backoff = Backoff::Exponential {
                base_ms: 1,
                cap_ms: 1,
                jitter,
            };
            assert_eq!(policy(backoff).backoff(), backoff);
        }
    }

    #[test]
    fn jitter_is_deterministic() {
        let backoff = Backoff::Exponential {
            base_ms: 1000,
            cap_ms: 60_000,
            jitter: 0.5,
        };
        let first = RetryPolicy::new(backoff, 9).unwrap();
        let second = RetryPolicy::new(backoff, 9).unwrap();
        for retry in 0..20 {
            for salt in [0, 1, salt_of("task-1")] {
                assert_eq!(first.delay_ms(retry, salt), second.delay_ms(retry, salt));
            }
        }
        let other_seed = RetryPolicy::new(backoff, 10).unwrap();
        assert_ne!(delays(&first, 1..=10), delays(&other_seed, 1..=10));
    }

    #[test]
    fn salt_is_fnv1a() {
        assert_eq!(salt_of(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(salt_of("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(salt_of("foobar"), 0x8594_4171_f739_67e8);
    }

    fn exponential_strategy() -> impl Strategy<Value = (u64, u64, f64)> {
        let base = prop_oneof![0u64..10_000, any::<u64>()];
        (base, any::<u64>(), 0.0..=1.0f64)
            .prop_map(|(base_ms, extra, jitter)| (base_ms, base_ms.saturating_add(extra), jitter))
    }

    proptest! {
        #[test]
        fn jittered_delay_stays_within_its_spread_and_cap(
            (base_ms, cap_ms, jitter) in exponential_strategy(),
            retry in prop_oneof![0u32..80, any::<u32>()],
            seed in any::<u64>(),
            salt in any::<u64>(),
        ) {
            let policy_with = |jitter| {
                RetryPolicy::new(Backoff::Exponential { base_ms, cap_ms, jitter }, seed).unwrap()
            };
            let jittered = policy_with(jitter);
            let delay = policy_with(0.0).delay_ms(retry, salt);
            let spread = (delay as f64 * jitter).ceil() as i128;
            let lowest = i128::from(delay) - spread;
            let highest = (i128::from(delay) + spread).min(i128::from(cap_ms));
            let actual = i128::from(jittered.delay_ms(retry, salt));
            prop_assert!(actual <= i128::from(cap_ms));
            prop_assert!(
                (lowest..=highest).contains(&actual),
                "{} outside [{}, {}]", actual, lowest, highest
            );
        }

        #[test]
        fn jitter_spreads_tasks_apart(
            base_ms in 100u64..100_000,
            jitter in 0.1..=1.0f64,
            retry in 1u32..20,
            seed in any::<u64>(),
        ) {
            let policy = RetryPolicy::new(
                Backoff::Exponential { base_ms, cap_ms: u64::MAX, jitter },
                seed,
            )
            .unwrap();
            let first = policy.delay_ms(retry, salt_of("task-0"));
            let all_equal = (1..64)
                .all(|task| policy.delay_ms(retry, salt_of(&format!("task-{task}"))) == first);
            prop_assert!(!all_equal);
        }
    }
}

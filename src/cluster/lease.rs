//! Leadership: exactly one instance reads the sources, under a lease in Redis with a fencing
//! epoch.
//!
//! The lease is one key set with `NX PX` and renewed well before it expires; taking it
//! increments the cluster's epoch in the same script, so every leadership has a number no
//! earlier one had. The epoch, not the lease, fences what a leader writes: the bus accepts an
//! entry only while the epoch it carries is the cluster's current one (checked inside Redis, in
//! the same script as the `XADD`), so a leader that was paused — not dead — past its lease, and
//! wakes up still believing it leads, has every write refused. (A PostgreSQL advisory lock
//! would not do: a paused leader keeps its session and its lock.)

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Keys of one cluster, under its name.
#[derive(Clone, Debug)]
pub struct Keys {
    pub leader: String,
    pub epoch: String,
    prefix: String,
}

impl Keys {
    pub fn new(cluster: &str) -> Keys {
        let prefix = format!("opslive:{cluster}");
        Keys { leader: format!("{prefix}:leader"), epoch: format!("{prefix}:epoch"), prefix }
    }

    /// The stream of the instances' announcements ([`super::state`]).
    pub fn state(&self) -> String {
        format!("{}:state", self.prefix)
    }

    /// The bus stream of one source.
    pub fn stream(&self, source: &str) -> String {
        format!("{}:bus:{source}", self.prefix)
    }
}

/// Who holds the lease, as written in its key: the instance, its epoch and the address
/// followers bootstrap from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub instance: String,
    pub epoch: u64,
    pub url: String,
}

impl Holder {
    fn text(&self) -> String {
        format!("{} {} {}", self.epoch, self.instance, self.url)
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut parts = text.splitn(3, ' ');
        let epoch = parts.next()?.parse().ok()?;
        let instance = parts.next()?.to_string();
        let url = parts.next()?.to_string();
        Some(Holder { instance, epoch, url })
    }
}

/// Takes the lease if nobody holds it: the new epoch, or nothing.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ' ' .. ARGV[1], 'PX', ARGV[2])
return epoch
";

/// Extends the lease if it is still ours (same holder text, epoch included).
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Lets the lease go if it is still ours, so a clean shutdown hands over at once.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// One instance's side of the lease.
#[derive(Clone)]
pub struct Lease {
    pub keys: Keys,
    pub instance: String,
    pub url: String,
    pub ttl: Duration,
    redis: ConnectionManager,
}

impl Lease {
    pub fn new(redis: ConnectionManager, keys: Keys, instance: String, url: String, ttl: Duration) -> Lease {
        Lease { keys, instance, url, ttl, redis }
    }

    /// Takes the lease when nobody holds it: who we are now, with the new epoch.
    pub async fn try_acquire(&self) -> redis::RedisResult<Option<Holder>> {
        let mut con = self.redis.clone();
        let epoch: Option<u64> = redis::Script::new(ACQUIRE)
            .key(&self.keys.leader)
            .key(&self.keys.epoch)
            .arg(format!("{} {}", self.instance, self.url))
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await?;
        Ok(epoch.map(|epoch| Holder { instance: self.instance.clone(), epoch, url: self.url.clone() }))
    }

    /// Extends our lease: false when it is no longer ours (expired, taken by another).
    pub async fn renew(&self, us: &Holder) -> redis::RedisResult<bool> {
        let mut con = self.redis.clone();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.keys.leader)
            .arg(us.text())
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await?;
        Ok(renewed == 1)
    }

    pub async fn release(&self, us: &Holder) -> redis::RedisResult<()> {
        let mut con = self.redis.clone();
        let _: i64 = redis::Script::new(RELEASE).key(&self.keys.leader).arg(us.text()).invoke_async(&mut con).await?;
        Ok(())
    }

    /// Who holds the lease now, if anybody.
    pub async fn holder(&self) -> redis::RedisResult<Option<Holder>> {
        let mut con = self.redis.clone();
        let text: Option<String> = redis::cmd("GET").arg(&self.keys.leader).query_async(&mut con).await?;
        Ok(text.as_deref().and_then(Holder::parse))
    }

    /// How often a holder renews: a third of the lease, so two renewals may fail before it
    /// lapses.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_reads_back_from_its_text() {
        let h = Holder { instance: "a-1".into(), epoch: 42, url: "http://10.0.0.1:8080".into() };
        assert_eq!(Holder::parse(&h.text()), Some(h));
        assert_eq!(Holder::parse("nonsense"), None);
    }
}

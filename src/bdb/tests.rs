//! The safe layer against a real environment in a temporary home.

use super::*;
use crate::test_home::TempHome;

/// A fresh home, removed on drop.
struct Home(TempHome);

impl Home {
    fn new(tag: &str) -> Home {
        Home(TempHome::new(&format!("bdb-{tag}")))
    }

    fn open(&self) -> Env {
        let config = EnvConfig {
            cache_bytes: 1 << 20,
            log_buffer_bytes: 64 * 1024,
            lock_table_size: 1000,
            nosync: true,
            auto_remove_logs: false,
        };
        Env::open(self.0.path(), &config, None).unwrap()
    }
}

#[test]
fn cursor_walks_in_key_order_then_stays_finished() {
    let home = Home::new("cursor");
    let env = home.open();
    let db = Database::open_btree(&env, b"list").unwrap();
    let txn = env.begin().unwrap();
    for key in [&b"b"[..], b"c", b"a"] {
        db.put(&txn, key, &[key[0]; 3]).unwrap();
    }
    txn.commit().unwrap();

    let mut cursor = db.cursor().unwrap();
    let walked: Vec<_> = cursor.by_ref().collect::<Result<_>>().unwrap();
    assert_eq!(
        walked,
        [
            (b"a".to_vec(), b"aaa".to_vec()),
            (b"b".to_vec(), b"bbb".to_vec()),
            (b"c".to_vec(), b"ccc".to_vec()),
        ]
    );
    assert!(cursor.next().is_none());
    assert!(cursor.next().is_none());
}

#[test]
#[should_panic(expected = "another Berkeley DB environment")]
fn a_transaction_is_refused_by_another_environments_database() {
    let (home_a, home_b) = (Home::new("txn-a"), Home::new("txn-b"));
    let (env_a, env_b) = (home_a.open(), home_b.open());
    let db_b = Database::open_btree(&env_b, b"list").unwrap();
    let txn_a = env_a.begin().unwrap();
    let _ = db_b.put(&txn_a, b"key", b"value");
}

/// Compiles only when `T` is `Send` and `Sync`.
fn assert_send_sync<T: Send + Sync>() {}

/// `<T as NotSend<_>>::CHECK` compiles only when `T` is not `Send`: for a
/// `Send` type both impls apply and the `_` is ambiguous.
trait NotSend<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSend<()> for T {}
impl<T: ?Sized + Send> NotSend<u8> for T {}

/// The same for `Sync`.
trait NotSync<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSync<()> for T {}
impl<T: ?Sized + Sync> NotSync<u8> for T {}

#[test]
fn only_handles_opened_with_db_thread_cross_threads() {
    assert_send_sync::<Env>();
    assert_send_sync::<Database>();
    let () = <Env<Unthreaded> as NotSend<_>>::CHECK;
    let () = <Env<Unthreaded> as NotSync<_>>::CHECK;
    let () = <Database<Unthreaded> as NotSend<_>>::CHECK;
    let () = <Database<Unthreaded> as NotSync<_>>::CHECK;
    let () = <Txn<'static> as NotSend<_>>::CHECK;
    let () = <Cursor<'static> as NotSend<_>>::CHECK;
}

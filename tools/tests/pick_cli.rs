//! Several discoverable credentials for one RP on a USB key, through the binary: every one is
//! listed in the result's `credentials`, `--pick N` chooses which signs (default: the first),
//! and a `--pick` past the end is a usage error naming the count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{json_cli as cli, virtual_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_among_several_discoverable_credentials() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let key = virtual_key().await;
        let d = key.device_address();
        let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
        let mut ids = Vec::new();
        for user in ["alice", "bob"] {
            let reg = cli(
                &[&["register"], &usb[..], &["--user-name", user, "--resident-key", "required"]]
                    .concat(),
                0,
            )
            .await;
            ids.push(reg["credential_id"].as_str().unwrap().to_owned());
        }
        let default = cli(&[&["authenticate"], &usb[..]].concat(), 0).await;
        let listed = default["credentials"].as_array().unwrap_or_else(|| panic!("{default}"));
        assert_eq!(listed.len(), 2, "{default}");
        let listed_ids: Vec<&str> =
            listed.iter().map(|c| c["credential_id"].as_str().unwrap()).collect();
        for id in &ids {
            assert!(listed_ids.contains(&id.as_str()), "{id} in {listed_ids:?}");
        }
        assert_eq!(default["credential_id"], listed[0]["credential_id"], "default: the first");
        assert_eq!((&listed[0]["picked"], &listed[1]["picked"]), (&true.into(), &false.into()));

        let second = cli(&[&["authenticate"], &usb[..], &["--pick", "2"]].concat(), 0).await;
        assert_eq!(second["credential_id"], listed[1]["credential_id"], "{second}");
        assert_eq!(second["user_handle"], listed[1]["user_handle"], "{second}");
        assert_eq!(second["credentials"][1]["picked"], true);

        let past = cli(&[&["authenticate"], &usb[..], &["--pick", "3"]].concat(), 2).await;
        assert!(past["error"].as_str().unwrap().contains("2 discoverable"), "{past}");
        let zero = cli(&[&["authenticate"], &usb[..], &["--pick", "0"]].concat(), 2).await;
        assert!(zero["error"].as_str().unwrap().contains("counts from 1"), "{zero}");
        // One credential for the RP: no list.
        let single_rp = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.org"];
        cli(
            &[
                &["register"],
                &single_rp[..],
                &["--user-name", "carol", "--resident-key", "required"],
            ]
            .concat(),
            0,
        )
        .await;
        let single = cli(&[&["authenticate"], &single_rp[..]].concat(), 0).await;
        assert!(single.get("credentials").is_none(), "{single}");
    })
    .await
    .unwrap();
}

use super::{classify, Agent, Reported};

fn reported(agent: &str) -> Reported<'_> {
    match classify(agent.as_bytes()) {
        Agent::Reported(r) => r,
        other => panic!("{agent:?} read as {other:?}, not a reported count"),
    }
}

fn report(service: &'static str, feed_id: &'static str, subscribers: u64) -> Reported<'static> {
    Reported {
        service,
        feed_id,
        subscribers,
    }
}

#[test]
fn hosted_readers_report_their_subscribers() {
    for (agent, expected) in [
        (
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )",
            report("Feedly", "", 134),
        ),
        (
            "Mozilla/5.0 (compatible; inoreader.com; 25 subscribers)",
            report("Inoreader", "", 25),
        ),
        (
            "Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 5 subscribers)",
            report("Inoreader", "", 5),
        ),
        (
            "NewsBlur Feed Fetcher - 12 subscribers - https://www.newsblur.com/site/6270734/future-tech (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/534.48.3 (KHTML, like Gecko) Version/5.1 Safari/534.48.3)",
            report("NewsBlur", "6270734", 12),
        ),
        (
            "Feedbin feed-id:1234 - 56 subscribers",
            report("Feedbin", "1234", 56),
        ),
        (
            "Feedbin feed-id:1 - 1 subscriber",
            report("Feedbin", "1", 1),
        ),
        (
            "Mozilla/5.0 (compatible; theoldreader.com; 3 subscribers; feed-id=5f2a9c0e1b7d)",
            report("The Old Reader", "5f2a9c0e1b7d", 3),
        ),
        (
            "Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 7 subscribers)",
            report("BazQux", "", 7),
        ),
        (
            "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 4 subscribers; feed-id=9048986372668769311)",
            report("Google Feedfetcher", "9048986372668769311", 4),
        ),
        (
            "Netvibes (http://www.netvibes.com/; 1 subscribers; feedID: 66394)",
            report("Netvibes", "66394", 1),
        ),
        (
            "Overcast/1.0 Podcast Sync (1190 subscribers; feed-id=554901; +http://overcast.fm/)",
            report("Overcast", "554901", 1190),
        ),
        (
            "FeedHQ/1.0 (https://feedhq.org/; 2 readers)",
            report("FeedHQ", "", 2),
        ),
        (
            "Superfeedr bot/2.0 http://superfeedr.com - 9 subscribers - feed_id=abc",
            report("Superfeedr", "abc", 9),
        ),
        // Another service of the same shape: named as it names itself.
        (
            "Readly/3.1 (+https://readly.example; 40 subscribers; feed-id=x-1)",
            report("Readly", "x-1", 40),
        ),
    ] {
        assert_eq!(reported(agent), expected, "{agent}");
    }
}

#[test]
fn forged_counts_are_read_as_written_and_names_stay_tame() {
    // The cap is applied by the counter; the parser reads the number as it is.
    assert_eq!(
        reported("NewsBlur Feed Fetcher - 5000000 subscribers").subscribers,
        5_000_000
    );
    assert_eq!(
        reported("Feedly/1.0 (99999999999999999999999999 subscribers)").subscribers,
        u64::MAX
    );
    // A browser agent with a count: no service name to show.
    let browserish = reported(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 77 subscribers",
    );
    assert_eq!(
        (browserish.service, browserish.subscribers),
        ("unknown", 77)
    );
    // Markup, over-long names and ids never come through.
    assert_eq!(
        reported("<script>alert(1)</script> 5 subscribers").service,
        "unknown"
    );
    let long = format!("{} 5 subscribers", "A".repeat(41));
    assert_eq!(reported(&long).service, "unknown");
    let long_id = format!("Feedbin feed-id:{} - 5 subscribers", "9".repeat(65));
    assert_eq!(reported(&long_id).feed_id, "");
    assert_eq!(
        reported("Feedbin feed-id:<b>1</b> - 5 subscribers").feed_id,
        ""
    );
}

#[test]
fn a_count_needs_a_number_standing_alone_and_the_word() {
    for agent in [
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; like FeedFetcher-Google)",
        "Foo/1.0 (v2 subscribers)",
        "Foo/1.0 (5subscribers)",
        "Foo/1.0 (5 subscribersx)",
        "Foo/1.0 (5 readership)",
        "Foo/1.0 (subscribers: 5)",
    ] {
        assert_eq!(classify(agent.as_bytes()), Agent::Reader, "{agent}");
    }
}

#[test]
fn readers_of_one_person_are_readers() {
    for agent in [
        "Miniflux/2.1.0 (+https://miniflux.app)",
        "Mozilla/5.0 (compatible; Miniflux/2.2.3; +https://miniflux.app)",
        "NetNewsWire (RSS Reader; https://netnewswire.com/)",
        "Tiny Tiny RSS/21.11 (http://tt-rss.org/)",
        "FreshRSS/1.24.0 (Linux; https://freshrss.org)",
        "Liferea/1.13.5 (Linux; en_US; https://lzone.de/liferea/)",
        "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.0",
        "curl/8.5.0",
        "",
    ] {
        assert_eq!(classify(agent.as_bytes()), Agent::Reader, "{agent}");
    }
}

#[test]
fn browsers_are_told_apart() {
    for agent in [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0; DigExt)",
        "Opera/9.80 (Windows NT 6.0) Presto/2.12.388 Version/12.14",
    ] {
        assert_eq!(classify(agent.as_bytes()), Agent::Browser, "{agent}");
    }
}

#[test]
fn crawlers_are_told_apart() {
    for agent in [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
        "W3C_Validator/1.3 http://validator.w3.org/services",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    ] {
        assert_eq!(classify(agent.as_bytes()), Agent::Crawler, "{agent}");
    }
}

#[test]
fn only_the_first_bytes_are_read() {
    let long = format!("Foo/1.0 {} 5 subscribers", "x".repeat(600));
    assert_eq!(classify(long.as_bytes()), Agent::Reader);
}

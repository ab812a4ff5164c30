import test from "ava";
import { redactDeep, redactUrls, withoutCredentials } from "./redact.js";

test("redacts the user and password of every URL in a text, whatever the scheme", (t) => {
  t.is(redactUrls("clone https://deploy:hunter2@git.example.com/a.git and http://tok@h:3000/b"), "clone https://***@git.example.com/a.git and http://***@h:3000/b");
  t.is(redactUrls('{"url":"postgres://u:p%40ss@db/app"}'), '{"url":"postgres://***@db/app"}');
  t.is(redactUrls("https://git.example.com/a.git, mail alice@example.com"), "https://git.example.com/a.git, mail alice@example.com", "a URL without credentials and an address stay");
});

test("a URL loses its credentials and keeps the rest; a path is left alone", (t) => {
  t.is(withoutCredentials("https://deploy:hunter2@git.example.com/acme/shop.git"), "https://git.example.com/acme/shop.git");
  t.is(withoutCredentials("https://git.example.com/acme/shop.git"), "https://git.example.com/acme/shop.git");
  t.is(withoutCredentials("/srv/git/shop"), "/srv/git/shop");
});

test("redactDeep redacts every string of a status", (t) => {
  t.deepEqual(redactDeep({ conditions: [{ message: "cannot poll https://u:p@h/r.git" }], url: "http://shop.demo" }),
    { conditions: [{ message: "cannot poll https://***@h/r.git" }], url: "http://shop.demo" });
});

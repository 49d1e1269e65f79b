// A crawlfleet handler: every page of a named crawl runs through it, on every worker.
//
//   crawlfleet crawl http://127.0.0.1:8080/graph/ --follow same-hostname --max-depth 2 \
//     --handler examples/handlers/titles-and-prices.mjs --out items.jsonl
//
// (`node test/dist/fixture/serve.js --port 8080` serves the fixture site.) The default export is a router:
// a function per label, and `default` for pages without one. Each gets a context:
//   request   { url, label, depth, userData }
//   response  { url, status, headers, body, text(), json() }
//   $         the page parsed with cheerio (built the first time it is read)
//   enqueue   (urls or { url, label, userData }, { label, userData }) -> how many were new
//   push      (record) -> written with the page's result, once, to every sink
//   session   { workflow(name), setWorkflow(name, state) } for jobs with a session
//   log       { info(message, fields), warn(message, fields) }
// A handler that throws fails the job as handler_error (retried, then dead-lettered with its stack).

export default {
  /** The listing pages: their products are enqueued with the label `product`. */
  default({ $, request, enqueue, push }) {
    const products = $('a[href*="/graph/n/"]')
      .map((_, a) => new URL($(a).attr('href'), request.url).href)
      .get();
    enqueue(products, { label: 'product', userData: { listedOn: request.url } });
    push({ kind: 'listing', url: request.url, title: $('h1').text(), products: products.length });
  },

  /** A product page: its title and price. */
  product({ $, request, push }) {
    const price = $('.price')
      .first()
      .text()
      .replace(/[^0-9.]/g, '');
    push({
      kind: 'product',
      url: request.url,
      title: $('h1').text(),
      price: price === '' ? null : Number(price),
      listedOn: request.userData.listedOn ?? null,
    });
  },
};

// The link-following benchmark's handler: parses the page, enqueues its links and pushes one record.
export default function ({ $, request, enqueue, push }) {
  const links = $('a[href]')
    .map((_, a) => new URL($(a).attr('href'), request.url).href)
    .get();
  enqueue(links);
  push({ url: request.url, title: $('h1').text(), links: links.length });
}

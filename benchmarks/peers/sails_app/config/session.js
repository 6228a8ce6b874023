module.exports.session = {
  secret: 'trisails-benchmarks-not-a-secret-0123456789abcdef',
  cookie: { maxAge: 24 * 60 * 60 * 1000 }
};

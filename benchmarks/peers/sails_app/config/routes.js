module.exports.routes = {
  'GET /bench/echo': 'BenchController.echo'
};

/** GET /bench/echo answers its query parameters as JSON. */
module.exports = {
  echo: function (req, res) {
    return res.json(req.allParams());
  }
};

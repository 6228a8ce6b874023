/** The benchmark user, as benchmarks/trisails_app/api/models/user.py. */
module.exports = {
  attributes: {
    name: { type: 'string', required: true },
    age: { type: 'number' }
  }
};
